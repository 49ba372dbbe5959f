"""Who may do what, and what they did: users and password sign-in (`users`), its throttle
(`throttle`), the audit log (`audit`) and deleting one participant's data everywhere (`privacy`).

Imports store and errors (privacy reads the other rooms' data to delete it).
"""
