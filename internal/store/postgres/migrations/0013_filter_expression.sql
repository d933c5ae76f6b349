-- Expression filters (issue 17): a CEL expression over the event that a destination's events
-- must satisfy, after its other filters. '' means none. The text is stored as the owner saved
-- it (trimmed); it is compiled when saved and whenever the destination is loaded.

ALTER TABLE destinations ADD COLUMN filter_expression TEXT NOT NULL DEFAULT '';
