"""The web app that the stack deploys: `GET /`, `GET /health` on port 8000."""
