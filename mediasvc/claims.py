"""The token claims the service reads by default; each is renamed by a setting
(`MEDIASVC_JWT_SUBJECT_CLAIM`, `MEDIASVC_JWT_ADMIN_CLAIM`, `MEDIASVC_JWT_MANAGE_CLAIM`). A
leaf, so that settings and the verifier share one default without importing each other."""

# The owner id: a string, or a number taken as its decimal string.
DEFAULT_SUBJECT_CLAIM = "sub"
# `true` makes the holder an admin. Namespaced, so that a product's own `role` or `admin`
# claim, minted for its own purposes, never grants it.
DEFAULT_ADMIN_CLAIM = "mediasvc_admin"
# A list of space ids whose holder manages them: may empty them (`DELETE
# /v1/spaces/{space}/media`). Namespaced for the same reason, and separate from the spaces
# claim, since being a member of a conversation is not owning it.
DEFAULT_MANAGE_CLAIM = "mediasvc_manage"
