"""The framework-free core: configuration, the webhook protocol, answering, the Graph client.

Nothing under :mod:`cel_whatsapp.core` imports a web framework. The Flask
adapter (:mod:`cel_whatsapp.flask`) turns requests into plain values, calls
into this package, and turns the results back into responses; a job worker
(no request, no app context) calls the same code.
"""
