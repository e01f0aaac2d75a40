"""Integrations with other trainers; each module imports its trainer's library, an optional extra."""
