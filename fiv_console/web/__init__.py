"""The HTTP edge: thin handlers, middleware, and the answers' envelope. Only this package knows aiohttp."""
