"""The HTTP contract's homes: problem codes (`codes`), route paths (`paths`), the shapes of
bodies and events (`shapes`), and a media row as those shapes show it (`representation`).

Empty on purpose: `codes` and `paths` are leaves (the standard library only), so the
imaging workers, the flows and nginx rendering import them without the web layer or
pydantic; `shapes` and `representation` are imported by name where bodies are made.
"""
