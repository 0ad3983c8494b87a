"""Typer CLI. Modules here only parse, resolve paths/environment once, and call plain functions."""
