"""output: the published files, rendered from the store.

Owns which stories an output shows and which copy of each (selection and
filters), the Atom, RSS and JSON Feed documents (feedgen stops here), RFC 5005
archive pages, OPML, WebSub hub pings, and atomic file writes. Its entry is
`publish.publish_outputs`. May import the top-level vocabulary, `reader`
(sanitising text), `dedup` and `store`.
"""
