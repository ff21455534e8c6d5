<?php
// a local redirect (RFC 3875 §6.2.2): Location with a path and no Status; a 200 given to
// header() keeps PHP from turning it into a 302 of its own. ?to= picks the target;
// ?client=1 sends the same Location with PHP's own 302 (a client redirect).
$to = $_GET['to'] ?? '/info.php/after?from=redirect';
if (isset($_GET['client'])) header('Location: ' . $to);
else header('Location: ' . $to, true, 200);
setcookie('lost', '1');
echo "not sent\n";
