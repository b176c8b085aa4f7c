"""The mediafile: YAML text → a validated, frozen model.

    yamlload  the safe YAML composer with line and column marks
    matrix    matrix templates expanded to ordinary assets, before vars are interpolated
    relabel   diagnostics about expanded assets named by template and combination
    schema    the packaged JSON Schema
    schemacheck the schema layer: jsonschema errors as located, plain-word diagnostics
    validate  the semantic checks (references, inputs, cycles, paths), all at once
    inputs    what one `inputs:` entry refers to (asset output, URL, project file), or why not
    interpolate `${var}` replaced in every string, with its caps
    load      the front end: defaults, the model, and the source digest
    scaffold  the starter mediafile of `imaginebuild init`
    names     asset names read from the text alone, for shell completion

Layer 1, beside `store`: it knows nothing of runs, disk state or providers.
May import: the shared vocabulary only. (Two imports still break this and are listed
in tests/test_layers.py: the settled snapshot's path helper and the price table.)
"""
