"""The engine: what to build, in what order, and the run itself.

    keys        canonical encoding and action keys
    graph       the DAG: targets, order, cycles, critical-path priorities
    rebuild     the pure per-asset decision with its reasons
    pricing     the price table and estimates; `estimates` and `budget` build on it
    scheduler   the async ready-queue that runs opaque steps
    facts       what a run is asked to do, and one asset's known state
    assess      one asset's facts gathered and decided (plan, status, every step)
    fetch       URL inputs fetched into the cache
    outputcheck what a provider's outputs must be before they are kept
    takes       holds (rejected takes, hand retouches) and making a take current
    takedesk    the take commands: list, pick, accept, adopt
    runner      one run from its collaborators (assessor, state, materializer)
    results     what a command reports back, as data and as JSON

Layer 3: it drives `providers`, `store` and `remote` but never prints, exits or
parses arguments; `project` wires it to one mediafile on disk.
May import: the shared vocabulary, `mediafile`, `store`, `providers`, `remote` and
`coordinator`.
"""
