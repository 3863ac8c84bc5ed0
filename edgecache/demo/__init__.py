"""Demo storefront: a seeded inventory service and the aiohttp origin that serves its pages."""
