"""The control catalogue and the checks that test each control."""
