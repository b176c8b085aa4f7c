"""The mediafile: YAML text → a validated, frozen model.

    yamlload  the safe YAML composer with line and column marks
    matrix    matrix templates expanded to ordinary assets, before vars are interpolated
    schema    the packaged JSON Schema
    validate  the schema layer and the semantic checks, all located diagnostics at once
    load      interpolation, defaults, the model, and the source digest
    scaffold  the starter mediafile of `imaginebuild init`

May import: the shared vocabulary at the package root (errors, model, atomic, urls, …)
and the price table of `engine.pricing` for the price-override check.
"""
