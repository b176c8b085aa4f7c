"""The engine: what to build, in what order, and the run itself.

    keys        canonical encoding and action keys
    graph       the DAG: targets, order, cycles, critical-path priorities
    rebuild     the pure per-asset decision with its reasons
    pricing     the price table and estimates; `estimates` and `budget` build on it
    priceoverrides a mediafile's `pricing:` block: its schema, merged over the table
    scheduler   the async ready-queue that runs opaque steps
    facts       what a run is asked to do, and one asset's known state
    assess      one asset's facts gathered and decided (plan, status, every step)
    fetch       URL inputs fetched into the cache
    outputcheck what a provider's outputs must be before they are kept
    takes       holds (rejected takes, hand retouches) and making a take current
    takedesk    the take commands: list, pick, accept, adopt
    runner      one run from its collaborators (assessor, state, materializer)
    stepinputs  a step's URL inputs fetched and cached inputs verified before a call
    jobs        journaled jobs, and calls that may have been billed (not resent)
    teamlink    the run's holds in the team coordinator's caps
    providerpool the run's providers, created on first call, with their call slots
    runtakes    the take rules before a call: holds, retouches set aside, the roll
    callrecord  the provenance record of a built step
    paidresults a result checked and stored, kept under its key until it is
    locking     the run's lockfile entries, written paced; `--locked`
    billing     the ledger's record-first accounts of each step's calls
    samekey     one call per key per run
    results     what a command reports back, as data and as JSON

Layer 3: it drives `providers`, `store` and `remote` but never prints, exits or
parses arguments; `project` wires it to one mediafile on disk.
May import: the shared vocabulary, `mediafile`, `store`, `providers`, `remote` and
`coordinator`.
"""
