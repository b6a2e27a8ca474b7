"""The built-in catalog: model and op cases, registered through the public
``harness`` API exactly as a user's cases would be."""
