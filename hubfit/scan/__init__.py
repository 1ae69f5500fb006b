"""Scanning every model of an organization: listing, a resumable SQLite cache, tables, HTML and bulk publishing."""
