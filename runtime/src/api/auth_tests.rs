//! Tests of the signature schemes: requests captured from the SDKs, and
//! properties over arbitrary input.

mod captured {
    use super::super::*;

    fn creds() -> Credentials {
        Credentials::from_pairs([("testAK".to_string(), "testSecret".to_string())])
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.to_ascii_lowercase().as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    fn at(date: &str) -> chrono::DateTime<chrono::Utc> {
        httpdate::parse_http_date(date).unwrap().into()
    }

    // Requests captured from aliyun-fc2 2.5.2 (spec Appendix A).
    #[test]
    fn fc_scheme_matches_captured_management_call() {
        let h = headers(&[
            ("date", "Sun, 22 Nov 2026 10:54:24 GMT"),
            ("content-type", "application/json"),
            (
                "authorization",
                "FC testAK:BKgS+/d1/luQs8g2B0iNPmSr6J++ISvR8QUpiuO8WaM=",
            ),
        ]);
        let req = SignedRequest {
            method: "GET",
            path: "/2016-08-15/account-settings",
            query: None,
            headers: &h,
            body: Some(b""),
        };
        let now = at("Sun, 22 Nov 2026 10:54:24 GMT");
        assert_eq!(
            verify(&creds(), &req, now).map(|v| v.access_key_id),
            Ok("testAK".into())
        );
        // The same request an hour later is refused.
        let later = now + chrono::Duration::hours(1);
        assert_eq!(verify(&creds(), &req, later), Err(AuthError::Skewed));
        let wrong = Credentials::from_pairs([("testAK".to_string(), "other".to_string())]);
        assert_eq!(verify(&wrong, &req, now), Err(AuthError::BadSignature));
        let unknown = Credentials::from_pairs([("x".to_string(), "testSecret".to_string())]);
        assert_eq!(verify(&unknown, &req, now), Err(AuthError::UnknownKey("testAK".into())));
    }

    #[test]
    fn fc_scheme_signs_x_fc_headers() {
        let h = headers(&[
            ("date", "Sun, 22 Nov 2026 10:54:25 GMT"),
            ("content-type", "application/json"),
            ("x-fc-invocation-type", "Async"),
            ("x-fc-stateful-async-invocation-id", "job-1"),
            (
                "authorization",
                "FC testAK:VT0txv0D/wAnPunS0o0jhd3aKO1xIiYCQCeUGhzg7mI=",
            ),
        ]);
        let req = SignedRequest {
            method: "POST",
            path: "/2016-08-15/services/svc1/functions/fn1/invocations",
            query: None,
            headers: &h,
            body: Some(b"{\"sleepMs\":100}"),
        };
        assert!(verify(&creds(), &req, at("Sun, 22 Nov 2026 10:54:25 GMT")).is_ok());
    }

    #[test]
    fn fc_scheme_http_trigger_variants() {
        // (b) aliyun-fc2 do_http_request
        let h = headers(&[
            ("date", "Sun, 22 Nov 2026 10:54:26 GMT"),
            ("content-type", "text/plain"),
            ("x-fc-foo", "bar"),
            (
                "authorization",
                "FC testAK:Y8p2tpCPg86BSkLP/ObZTPH+ChRSxO1ZzgDNrwQPLC8=",
            ),
        ]);
        let req = SignedRequest {
            method: "POST",
            path: "/2016-08-15/proxy/svc1/fn1/a/b%20c",
            query: Some("z=1&a=2&a=3&sp+ace=v+w"),
            headers: &h,
            body: None,
        };
        assert!(verify(&creds(), &req, at("Sun, 22 Nov 2026 10:54:26 GMT")).is_ok());
        // (c) the 2021 SDK's invoke_httptrigger
        let h = headers(&[
            ("date", "Sun, 22 Nov 2026 10:54:29 GMT"),
            ("content-type", "text/plain"),
            (
                "authorization",
                "FC testAK:dvTtZRktK4LuxSon6W6UZpqj4I+J3qllQS1rBk8Lfeg=",
            ),
        ]);
        let req = SignedRequest {
            method: "POST",
            path: "/2016-08-15/proxy/osvc/ofn/x/y",
            query: Some("b=2&a=1"),
            headers: &h,
            body: None,
        };
        assert!(verify(&creds(), &req, at("Sun, 22 Nov 2026 10:54:29 GMT")).is_ok());
    }

    #[test]
    fn acs3_round_trip_and_tampered_body() {
        let body = br#"{"description":"d2"}"#;
        let date = "2026-11-22T10:54:27Z";
        let now: chrono::DateTime<chrono::Utc> = chrono::DateTime::parse_from_rfc3339(date).unwrap().into();
        let sha = hex::encode(Sha256::digest(body));
        let signed = "host;x-acs-content-sha256;x-acs-date";
        let canonical = format!(
            "PUT\n/2021-04-06/services/osvc\nqualifier=a%20b\nhost:127.0.0.1:9000\nx-acs-content-sha256:{sha}\nx-acs-date:{date}\n\n{signed}\n{sha}"
        );
        let sts = format!(
            "ACS3-HMAC-SHA256\n{}",
            hex::encode(Sha256::digest(canonical.as_bytes()))
        );
        let sig = hex::encode(hmac_sha256(b"testSecret", sts.as_bytes()));
        let auth = format!("ACS3-HMAC-SHA256 Credential=testAK,SignedHeaders={signed},Signature={sig}");
        let h = headers(&[
            ("host", "127.0.0.1:9000"),
            ("x-acs-date", date),
            ("x-acs-content-sha256", &sha),
            ("authorization", &auth),
        ]);
        let mut req = SignedRequest {
            method: "PUT",
            path: "/2021-04-06/services/osvc",
            query: Some("qualifier=a+b"),
            headers: &h,
            body: Some(body),
        };
        assert_eq!(
            verify(&creds(), &req, now).map(|v| v.access_key_id),
            Ok("testAK".into())
        );
        req.body = Some(br#"{"description":"evil"}"#);
        assert_eq!(verify(&creds(), &req, now), Err(AuthError::BodyHashMismatch));
    }

    #[test]
    fn missing_or_unknown_scheme_is_refused() {
        let h = headers(&[]);
        let req = SignedRequest {
            method: "GET",
            path: "/",
            query: None,
            headers: &h,
            body: None,
        };
        assert_eq!(verify(&creds(), &req, chrono::Utc::now()), Err(AuthError::Missing));
    }
}

/// Properties of the signature parsers over arbitrary input.
mod properties {
    use proptest::prelude::*;

    use super::super::*;

    fn creds() -> Credentials {
        Credentials::from_pairs([("ak".to_string(), "sk".to_string())])
    }

    fn header_map(pairs: &[(String, String)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            if let (Ok(k), Ok(v)) = (
                http::HeaderName::from_bytes(k.as_bytes()),
                http::HeaderValue::from_str(v),
            ) {
                h.append(k, v);
            }
        }
        h
    }

    proptest! {
        /// Whatever a client sends, verification answers (it never panics),
        /// and nothing unsigned passes.
        #[test]
        fn arbitrary_authorization_headers_are_refused(
            auth in "(FC |ACS3-HMAC-SHA256 |acs )?[ -~]{0,200}",
            date in "[ -~]{0,40}",
            path in "/[ -~]{0,60}",
            query in proptest::option::of("[ -~]{0,60}"),
            body in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let h = header_map(&[
                ("authorization".into(), auth),
                ("date".into(), date.clone()),
                ("x-acs-date".into(), date),
            ]);
            let req = SignedRequest { method: "POST", path: &path, query: query.as_deref(), headers: &h, body: Some(&body) };
            prop_assert!(verify(&creds(), &req, chrono::Utc::now()).is_err());
        }

        /// An FC signature holds for exactly the request it was made for.
        #[test]
        fn fc_signatures_bind_method_path_and_fc_headers(
            path in "/2016-08-15/services/[a-z][a-z0-9-]{0,20}",
            other in "/2016-08-15/services/[a-z][a-z0-9-]{0,20}",
            fc_value in "[a-zA-Z0-9]{1,20}",
            tampered in "[a-zA-Z0-9]{1,20}",
        ) {
            let now = chrono::Utc::now();
            let date = httpdate::fmt_http_date(now.into());
            let mut h = header_map(&[
                ("date".into(), date),
                ("content-type".into(), "application/json".into()),
                ("x-fc-thing".into(), fc_value.clone()),
            ]);
            let auth = fc_authorization("ak", "sk", "PUT", &h, &path);
            h.insert("authorization", http::HeaderValue::from_str(&auth).unwrap());
            let signed = |method: &'static str, p: &str, h: &HeaderMap| {
                let req = SignedRequest { method, path: p, query: None, headers: h, body: Some(b"") };
                verify(&creds(), &req, now).is_ok()
            };
            prop_assert!(signed("PUT", &path, &h));
            prop_assert!(!signed("POST", &path, &h));
            prop_assert_eq!(signed("PUT", &other, &h), other == path);
            let mut changed = h.clone();
            changed.insert("x-fc-thing", http::HeaderValue::from_str(&tampered).unwrap());
            prop_assert_eq!(signed("PUT", &path, &changed), tampered == fc_value);
        }

        /// Content-MD5 matches its own body and no other.
        #[test]
        fn content_md5_binds_the_body(body in proptest::collection::vec(any::<u8>(), 0..256), other in proptest::collection::vec(any::<u8>(), 0..256)) {
            use md5::Digest as _;
            let digest = base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(&body));
            let h = header_map(&[("content-md5".into(), digest)]);
            prop_assert_eq!(check_content_md5(&h, &body), Ok(true));
            prop_assert_eq!(check_content_md5(&h, &other).is_ok(), other == body);
            prop_assert_eq!(check_content_md5(&HeaderMap::new(), &other), Ok(false));
        }
    }
}
