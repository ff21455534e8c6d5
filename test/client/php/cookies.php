<?php
setcookie('a', '1');
setcookie('b', '2');
setcookie('c', '3');
header('X-Colon: a:b: c');
echo "three cookies\n";
