"""Errors a person can act on. Messages name the item and the rule, never personal data."""


class CustosError(Exception):
    """Base class: the CLI prints the message and exits with ``exit_code``."""

    exit_code = 2


class ConfigError(CustosError):
    """A setting or policy file is wrong."""


class PolicyError(ConfigError):
    """A policy YAML file failed validation (message names the file, key path and reason)."""


class KeyringError(CustosError):
    """The keyring is missing, unreadable, or does not hold the key asked for."""


class DecryptionError(CustosError):
    """A ciphertext failed authentication: wrong key, wrong binding, or tampered bytes."""


class EvidenceError(CustosError):
    """The evidence store refused an operation (bad period, sealed run, missing file)."""


class InputError(CustosError):
    """Input that cannot be processed at all (not a batch folder, a bad id); nothing changed."""
