"""Settings profiles: `production` (containers), `test` (pytest) and `local` (honcho on a laptop)."""
