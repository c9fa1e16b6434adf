"""Train-time learning (numpy, scipy): models fitted by the train function and the offline
evaluation. Never imported by the api, deliver or other request-time functions, whose
layer has no numpy; what they need at request time is in nudge.domain (pure Python)."""
