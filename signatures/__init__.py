"""Declarative task schemas (types, definitions, triggers), shipped as package data."""
