"""The built-in catalog: model and op cases, registered through the public
``torchparity`` API exactly as a user's cases would be."""
