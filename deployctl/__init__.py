"""deployctl: the command-line client of the automation service (HTTP only: it imports
nothing of the service)."""
