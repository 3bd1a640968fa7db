"""HTTP: routes, handlers, middlewares and problem responses."""
