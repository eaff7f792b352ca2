"""Production side: the BentoML service, the HTTP client, the promote/serve lifecycle."""
