# A WSGI app for the client tests under uWSGI: 201, three cookies, and a JSON report of the
# request (method, path, query, CONTENT_LENGTH, X-Test, body length and sha256).
import hashlib
import json


def application(environ, start_response):
    length = environ.get('CONTENT_LENGTH') or ''
    body = environ['wsgi.input'].read(int(length)) if length.isdigit() else b''
    out = json.dumps({
        'method': environ['REQUEST_METHOD'],
        'path': environ.get('PATH_INFO'),
        'query': environ.get('QUERY_STRING'),
        'contentLength': length or None,
        'test': environ.get('HTTP_X_TEST'),
        'length': len(body),
        'sha': hashlib.sha256(body).hexdigest(),
    }).encode()
    start_response('201 Created', [
        ('Content-Type', 'application/json'),
        ('Set-Cookie', 'a=1'),
        ('Set-Cookie', 'b=2'),
        ('Set-Cookie', 'c=3'),
    ])
    return [out]
