"""Artifacts people read: CSV that spreadsheets cannot execute, self-contained HTML."""
