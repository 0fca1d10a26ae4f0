"""The part of the app its authors would rather not ship as readable source: a licence check."""
import hashlib

_SALT = b"kiln-example"


def key_for(customer):
    return hashlib.sha256(_SALT + customer.encode()).hexdigest()[:16]


def is_valid(customer, key):
    return key_for(customer) == key
