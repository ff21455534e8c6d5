# bench:e2e row "uwsgi-python": the same hello world as a WSGI app, run by uWSGI (Debian
# uwsgi-core with the python3 plugin) in one process behind nginx uwsgi_pass. Content-Length is
# set as tsgi's gateway sets it for the other rows.
BODY = b'Hello, world!\n'
HEADERS = [('Content-Type', 'text/plain'), ('Content-Length', str(len(BODY)))]


def application(environ, start_response):
    start_response('200 OK', HEADERS)
    return [BODY]
