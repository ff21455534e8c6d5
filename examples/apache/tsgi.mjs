#!/usr/bin/env -S tsgi cgi
// A cgi-bin program for Apache's mod_cgi or lighttpd's mod_cgi: install it executable (e.g. as
// /usr/lib/cgi-bin/tsgi.mjs) and point the export at your app. The kernel runs `tsgi cgi` on
// this module, which hands it the app: no shell in between — a `#!/bin/sh` wrapper
// (`exec tsgi cgi APP`) rebuilds the environment and keeps only one of two values of a
// variable, such as the HTTP_X_FOO_BAR of both X-Foo-Bar and X_Foo_Bar behind lighttpd.
export { default } from '/srv/app/app.mjs';
