"""The vault: the dedicated customer-information store (Art. 12)."""
