"""The token claims the service reads by default; each is renamed by a setting
(`MEDIASVC_JWT_SUBJECT_CLAIM`, `MEDIASVC_JWT_ADMIN_CLAIM`). A leaf, so that settings and
the verifier share one default without importing each other."""

# The owner id: a string, or a number taken as its decimal string.
DEFAULT_SUBJECT_CLAIM = "sub"
# `true` makes the holder an admin. Namespaced, so that a product's own `role` or `admin`
# claim, minted for its own purposes, never grants it.
DEFAULT_ADMIN_CLAIM = "mediasvc_admin"
