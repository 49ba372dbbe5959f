"""Who may do what, and what they did: users and password sign-in (`users`), its throttle
(`throttle`), the one authorization policy pages and services ask (`policy`), pseudonyms for
participants (`pseudonyms`), the audit log (`audit`) and deleting one participant's data everywhere
(`privacy`, with the steps over each room's data in `erasure`).

May import: store, model, review, lifecycle, checkins (privacy and erasure reach into every
room's data to delete one participant; users, policy, pseudonyms, throttle and audit need only store).
"""
