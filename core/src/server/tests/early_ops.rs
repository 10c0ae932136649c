//! `CONNECT` and `SUB` as a careless client sends them: bytes that are not
//! UTF-8 in the JSON, subscriptions made before `CONNECT`.

use super::*;

#[test]
fn a_name_that_is_not_utf8_is_accepted() {
    let mut h = Harness::new(Options::default());
    let id = h.accept();
    h.send_bytes(
        id,
        b"CONNECT {\"name\":\"\xff\xfe\",\"verbose\":true}\r\nPING\r\n",
    );
    assert_eq!(h.out(id), "+OK\r\nPONG\r\n");
    assert_eq!(h.close_reason(id), None);
}

#[test]
fn a_name_that_is_not_utf8_without_credentials_is_an_authorization_violation() {
    let mut h = Harness::new(Options {
        auth: Auth::UserPassword {
            user: "u".into(),
            password: "p".into(),
        },
        ..Options::default()
    });
    let id = h.accept();
    h.send_bytes(
        id,
        b"CONNECT {\"name\":\"\xff\xfe\",\"verbose\":true}\r\nPING\r\n",
    );
    assert_eq!(h.out(id), "-ERR 'Authorization Violation'\r\n");
    assert_eq!(
        h.close_reason(id),
        Some(CloseReason::AuthenticationViolation)
    );
    let id = h.accept();
    h.send_bytes(
        id,
        b"CONNECT {\"name\":\"\xff\xfe\",\"user\":\"u\",\"pass\":\"p\"}\r\nPING\r\n",
    );
    assert_eq!(h.out(id), "+OK\r\nPONG\r\n");
    assert_eq!(h.close_reason(id), None);
}

#[test]
fn a_client_at_the_subscription_limit_before_connect_stays() {
    let mut h = Harness::new(Options {
        max_subscriptions: 2,
        ..Options::default()
    });
    let id = h.accept();
    h.send(id, "SUB a 1\r\nSUB b 2\r\nSUB c 3\r\n");
    assert_eq!(
        h.out(id),
        "+OK\r\n+OK\r\n-ERR 'maximum subscriptions exceeded'\r\n"
    );
    h.send(id, "CONNECT {\"verbose\":false}\r\nPING\r\n");
    assert_eq!(h.out(id), "PONG\r\n");
    h.send(id, "SUB d 4\r\nPUB a 1\r\nx\r\n");
    assert_eq!(
        h.out(id),
        "-ERR 'maximum subscriptions exceeded'\r\nMSG a 1 1\r\nx\r\n"
    );
    assert_eq!(h.close_reason(id), None);
}

#[test]
fn a_message_before_connect_subscriptions_is_delivered_before_the_limit_error() {
    let mut h = Harness::new(Options {
        max_subscriptions: 5,
        ..Options::default()
    });
    let id = h.accept();
    h.send(
        id,
        "SUB a 1\r\nSUB b 2\r\nSUB c 3\r\nSUB d 4\r\nSUB e 5\r\n\
         CONNECT {\"verbose\":false}\r\nPUB a 2\r\nhi\r\nSUB f 6\r\nPING\r\n",
    );
    assert_eq!(
        h.out(id),
        "+OK\r\n+OK\r\n+OK\r\n+OK\r\n+OK\r\nMSG a 1 2\r\nhi\r\n\
         -ERR 'maximum subscriptions exceeded'\r\nPONG\r\n"
    );
    assert_eq!(h.close_reason(id), None);
}
