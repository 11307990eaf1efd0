"""REST routers, one module per resource; each handler is a thin call into ``scrutiny.service``."""
