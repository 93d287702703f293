"""Router: who must sign next, and who signs instead when that person is away."""
