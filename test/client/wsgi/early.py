# A WSGI app that refuses a POST with 413 at once, without reading wsgi.input; anything else:
# its method and path.


def application(environ, start_response):
    start_response('413 Payload Too Large' if environ['REQUEST_METHOD'] == 'POST' else '200 OK', [
        ('Content-Type', 'text/plain'),
    ] + ([('X-Early', 'yes')] if environ['REQUEST_METHOD'] == 'POST' else []))
    if environ['REQUEST_METHOD'] == 'POST':
        return [('too large: %s\n' % environ.get('CONTENT_LENGTH')).encode()]
    return [('%s %s\n' % (environ['REQUEST_METHOD'], environ.get('PATH_INFO'))).encode()]
