"""The service layer: configuration, connection, commit, registrar, journal, verify, audit, report."""
