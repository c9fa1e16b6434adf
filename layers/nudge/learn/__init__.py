"""Train-time learning (numpy, scipy, scikit-learn): models fitted by the train function and
the offline evaluation. Imported by the train function, local mode and the CLI only, never
by the api, deliver or other request-time functions, whose layer has no numpy; what they
need at request time is in nudge.domain (pure Python)."""
