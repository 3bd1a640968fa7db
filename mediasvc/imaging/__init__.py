"""Image work that runs in worker processes: pure libvips, no aiohttp, asyncpg or app imports."""
