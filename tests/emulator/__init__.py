"""Tests of the Glacier vault emulator (tests/vault_emulator), driven with boto3."""
