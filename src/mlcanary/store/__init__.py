"""The store: one package owns the database (engine, schema, every table's reads and writes).

Nothing outside it touches a table or a private member of ``Store``; the repositories by
concern (``database`` for predictions and feedback, ``signals``, ``traffic``,
``deployments`` for rollouts, their events and policy firings) are its public surface.
"""
