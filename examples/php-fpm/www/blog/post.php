<?php
// PATH_INFO is what follows the script in the path: /blog/post.php/2024/hello
header('Content-Type: text/plain');
setcookie('seen', '1');
setcookie('theme', 'dark');
echo "post ", $_SERVER['PATH_INFO'] ?? '(none)', ' via ', $_SERVER['SCRIPT_NAME'], "\n";
