"""Tools around the runtime, none of which the app or the engine import: `eval` (+
`eval_report`) for labelled sets, `scan` (+ `scan_inputs`, `scan_report`) for folders of
unlabelled images, `bench` for speed and memory, and `refusal` (is an answer a refusal),
which training shares."""
