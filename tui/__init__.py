"""nodewall's Textual TUI.  Talks to the kernel only through nodewall.engine."""
