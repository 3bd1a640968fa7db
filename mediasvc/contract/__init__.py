"""The HTTP contract's homes: problem codes (`codes`), route paths (`paths`), and the
shapes of bodies and events (`shapes`).

Empty on purpose: `codes` and `paths` are leaves (the standard library only), so the
imaging workers, the flows and nginx rendering import them without the web layer or
pydantic; `shapes` is imported by name where bodies are made.
"""
