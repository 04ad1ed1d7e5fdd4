"""`nodewall explain`: the path one packet takes through a DesiredState (pure)."""
