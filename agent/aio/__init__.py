"""Small asyncio building blocks shared by the agent's packages."""
