"""Network definitions (torch). Import only from compute paths: torch is loaded lazily."""
