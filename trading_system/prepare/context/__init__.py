"""The market context of the evening (DESIGN §11): the regime (``regime``), the earnings gate
(``events``) and each pick's price levels (``levels``); ``build`` puts them together for the plan.

Everything is computed from data clamped to the as-of instant.  May import what ``prepare`` may.
"""
