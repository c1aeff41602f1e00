"""Keys and encryption: the keyring, envelope encryption and blind indexes (Art. 8, 12)."""
