"""The TUI's screens (one Textual mode each) and its modal dialogs."""
