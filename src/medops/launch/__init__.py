"""Launchers: ways to run the medops stages. They map names to directories; no stage logic."""
