"""The flat files (DESIGN §8): the plan file's models and lock (``plan``), atomic writes
(``atomic``) and the order journal (``journal``).

May import: ``errors``, ``vocabulary``.  Never imports a stage, ``cli`` or ``present``.
"""
